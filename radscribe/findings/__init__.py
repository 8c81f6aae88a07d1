"""radscribe.findings"""
