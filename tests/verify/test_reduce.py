import numpy as np

from certnet.nn.activations import activation_spec
from certnet.verify.reduce import reduce_layers


def _acts(*names):
    return [activation_spec(n) for n in names]


def test_zero_rows_and_columns_are_dropped_in_cascade():
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(4, 2)), rng.normal(size=(3, 4)), rng.normal(size=(1, 3))]
    bs = [np.zeros(4), np.zeros(3), np.zeros(1)]
    ws[0][1] = 0.0  # neuron 1 of layer 1 is constant
    ws[2][:, 2] = 0.0  # neuron 2 of layer 2 is unused ...
    ws[1][:, 3] = 0.0
    ws[1][2, 3] = 5.0  # ... and neuron 3 of layer 1 fed only it
    red = reduce_layers(ws, bs, _acts("relu", "tanh"))
    assert red.kept == [[[0], [2]], [[0], [1]]]
    np.testing.assert_array_equal(red.weights[0], ws[0][[0, 2]])
    np.testing.assert_array_equal(red.weights[1], ws[1][np.ix_([0, 1], [0, 2])])
    assert red.errors == [None, None, None] and red.changed


def test_duplicates_merge_only_when_row_and_bias_are_bit_equal():
    rng = np.random.default_rng(1)
    ws = [rng.normal(size=(4, 2)), rng.normal(size=(1, 4))]
    ws[0][2] = ws[0][0]
    ws[0][3] = ws[0][1]
    bs = [np.array([0.5, 0.1, 0.5, 0.2]), np.zeros(1)]  # 3 differs from 1 in its bias
    red = reduce_layers(ws, bs, _acts("relu"))
    assert red.kept == [[[0, 2], [1], [3]]]
    np.testing.assert_array_equal(red.weights[1][:, 0], ws[1][:, 0] + ws[1][:, 2])


def test_the_rounding_of_a_merged_column_is_bounded_exactly():
    ws = [np.array([[1.0], [1.0]]), np.array([[1.0, 2.0**-60]])]
    red = reduce_layers(ws, [np.zeros(2), np.zeros(1)], _acts("tanh"))
    assert red.weights[1][0, 0] == 1.0 and red.errors[1][0, 0] == 2.0**-60


def test_a_layer_with_no_live_neuron_gives_a_constant_net():
    ws = [np.zeros((3, 2)), np.ones((1, 3))]
    red = reduce_layers(ws, [np.zeros(3), np.zeros(1)], _acts("relu"))
    assert red.activations == [] and red.weights[0].shape == (1, 2) and not red.weights[0].any()
