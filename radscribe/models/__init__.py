"""radscribe.models"""
