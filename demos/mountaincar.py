"""MountainCarContinuous-v0 with a certified controller.

Run ``python demos/mountaincar.py [OUT] [--quick]`` (same as ``certnet demo mountaincar``).
"""

from certnet.demos.mountaincar import main

if __name__ == "__main__":
    main()
