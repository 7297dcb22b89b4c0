"""Balance certnet's continuous cart-pole with a certified controller (Lipschitz and a local
closed-loop certificate around the upright equilibrium).

Run ``python demos/cartpole.py [OUT] [--quick]`` (same as ``certnet demo cartpole``).
"""

from certnet.demos.cartpole import main

if __name__ == "__main__":
    main()
