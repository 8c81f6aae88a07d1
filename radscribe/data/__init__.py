"""radscribe.data"""
