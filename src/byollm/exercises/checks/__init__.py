"""One checker per exercise: each module defines STEPS, a list of `checking.Step`."""
