"""radscribe.report"""
