"""Reference implementations, one module per stage (``stage1`` ... ``stage4``).

The checks compare students' code with these; the chapters and tests use them too.
"""
