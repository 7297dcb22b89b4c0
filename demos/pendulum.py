"""Swing-up and balance on gymnasium Pendulum-v1 with a certified controller.

Run ``python demos/pendulum.py [OUT] [--quick]`` (same as ``certnet demo pendulum``).
"""

from certnet.demos.pendulum import main

if __name__ == "__main__":
    main()
