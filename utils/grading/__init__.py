"""The batch grader's defences against a submission's own code.

- :mod:`utils.grading.sandbox`: each grading kernel runs under bubblewrap (``bwrap``):
  no network, its own PID namespace (nothing it starts outlives it), a private
  ``/tmp`` and home, the course read-only, the submissions and the grader's output
  hidden.
"""
