"""byollm.model"""
