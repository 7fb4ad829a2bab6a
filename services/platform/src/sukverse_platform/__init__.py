"""The sukverse command: the whole platform in one process, or one service alone."""
