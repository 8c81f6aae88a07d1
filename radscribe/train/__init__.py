"""radscribe.train"""
