"""byollm.tokenizer"""
