"""radscribe.preprocess"""
