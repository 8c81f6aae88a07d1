"""radscribe.serve"""
