"""byollm.evaluate"""
