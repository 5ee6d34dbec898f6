"""The grading sandbox: bubblewrap around a kernel template that forks one kernel per submission.

``bubblewrap``       limits, the bwrap command line, the kernels' environment, and
                     `KernelTemplate`, a worker's handle on its template process.
``kernel_template``  the template process itself (``python -m
                     normlab_tools.grading.sandbox.kernel_template``, inside bubblewrap):
                     pre-imports, then forks each kernel into its own namespaces.
``client``           the kernel manager and client nbgrader drives (kernels come from
                     the template; sockets reached through ``/proc/<pid>/root``).
"""
