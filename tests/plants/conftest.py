import pytest

import certnet as cn


def all_plants():
    import control

    return [
        cn.plants.Pendulum(),
        cn.plants.InvertedPendulum(),
        cn.plants.InvertedPendulum(max_torque=1.0, integrator="rk4"),
        cn.plants.CartPole(),
        cn.plants.MountainCar(),
        cn.plants.VehicleLateral(),
        cn.plants.LTI(control.ss([[0, 1], [2, -1]], [[0], [1]], [[1, 0]], 0), dt=0.1,
                      u_min=-3, u_max=3),
        cn.plants.LTI(control.ss([[1.1]], [[1.0]], [[1.0]], 0, 0.5)),
    ]


@pytest.fixture(params=all_plants(), ids=lambda p: repr(p).split("(")[0] + str(p.dt))
def plant(request):
    return request.param
