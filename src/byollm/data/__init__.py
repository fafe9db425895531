"""byollm.data"""
