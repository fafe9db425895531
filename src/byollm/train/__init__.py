"""byollm.train"""
