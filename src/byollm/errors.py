"""The one exception type for mistakes a user can make.

Anything a user can cause (a bad path, a malformed file, an unknown config key, a nonsense
sampling parameter) is raised as `ByollmError` with a message that names the file, key or value
and says what would be valid. The CLI prints that message on one line and exits with status 2;
any other exception is a bug in byollm and keeps its traceback.
"""


class ByollmError(Exception):
    """A user-facing error: the message is the whole story, no traceback needed."""
