"""radscribe.evaluate"""
