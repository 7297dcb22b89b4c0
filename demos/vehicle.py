"""Lateral vehicle control in a python-control closed loop, with certified gains.

Run ``python demos/vehicle.py [OUT] [--quick]`` (same as ``certnet demo vehicle`` once the
demo is registered; ``certnet.demos.vehicle.run`` meanwhile).
"""

from certnet.demos.vehicle import main

if __name__ == "__main__":
    main()
