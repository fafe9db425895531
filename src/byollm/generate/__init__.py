"""byollm.generate"""
