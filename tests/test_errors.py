"""Every broken file in tests/broken/ exits 2 with one `path:line:col: error:` line, no traceback.

Each expectation names the line and column of the fault and a phrase the message must hold,
so a message that points at the wrong spot, or says something vague, fails.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netdsl.cli import main

BROKEN = Path(__file__).parent / "broken"

EXPECTED = {  # file: (line, col, phrase)
    "bad_init_std": (22, 11, "standard deviation"),
    "bad_scales": (10, 11, "above 0, got 0"),
    "bias_beyond_float32": (12, 11, "1e+308 does not fit a float32, as a weight must (at most 3.4028235e+38 in size)"),
    "binary_file": (1, 1, "binary file"),
    "concat_sizes_differ": (22, 1, "differ in height or width"),
    "count_beyond_limit": (9, 11, "99999999999 exceeds the limit of 2,147,483,647 (2**31 - 1) for a count or size"),
    "cycle_reads_below": (15, 10, "defined below it"),
    "cycle_reads_itself": (15, 10, "reads itself"),
    "data_beyond_value_limit": (7, 1, "[data] has 10,800,000,000 output values per image, which exceeds the limit of 2,147,483,647"),
    "data_not_first": (4, 1, "the first layer must be `type = data`"),
    "decay_mult_a_name": (13, 14, "expected two numbers `W, B` (for the weights and the bias), got `none`"),
    "dropout_p_one": (21, 8, "below 1, got 1"),
    "duplicate_key": (12, 1, "`size` is set twice in [conv1] (first on line 11)"),
    "duplicate_section": (19, 1, "section [conv1] appears twice (first on line 8)"),
    "empty_file": (1, 1, "no layers"),
    "filters_beyond_64_bits": (10, 11, "the integer 1000000000000000000000000000000 does not fit in 64 bits"),
    "filters_not_divisible_by_groups": (10, 1, "`filters` 7 is not divisible by the 2 groups"),
    "hostile_name_dunder": (14, 1, "names starting with `_` are reserved"),
    "hostile_name_forward": (14, 1, "attribute of every torch.nn.Module"),
    "hostile_name_keyword": (14, 1, "`class` is a Python keyword"),
    "hostile_name_self": (14, 1, "cannot name a layer `self`"),
    "hostile_name_torch": (14, 1, "the generated code uses `torch`"),
    "hostile_name_training": (14, 1, "cannot name a layer `training`"),
    "hostile_net_name": (3, 17, "unexpected `os`"),
    "hostile_net_name_f": (4, 8, "the network's name `f` makes its class `F`, a name the generated code uses for itself"),
    "hostile_net_name_helper": (4, 8, "makes its class `LocalResponseNorm`, a name the generated code defines"),
    "hostile_net_name_none": (4, 8, "makes its class `None`, a Python keyword"),
    "hostile_value_call": (22, 22, "unexpected character `'`"),
    "hostile_value_code": (10, 12, "unexpected `)`"),
    "hostile_value_string": (12, 11, 'unexpected character `"`'),
    "infinite_number": (16, 9, "too large for a 64-bit float"),
    "integer_beyond_float": (12, 11, "an integer of 400 digits does not fit in 64 bits"),
    "integer_of_5000_digits": (10, 11, "an integer of 5000 digits does not fit in 64 bits"),
    "kernel_larger_than_input": (11, 1, "a kernel of size 40 does not fit an input of 32"),
    "layer_beyond_parameter_limit": (11, 1, "[conv1] has 2,799,999,972 parameters, which exceeds the limit of 2,147,483,647"),
    "lr_mult_negative": (13, 14, "expected a number at least 0, got -1"),
    "lr_mult_on_maxpool": (18, 1, "`lr_mult` is a key of batchnorm, conv, fc, local, siconv layers; a `maxpool` layer has none"),
    "lr_mult_three_values": (13, 11, "expected two numbers `W, B`"),
    "lrn_alpha_beyond_float32": (15, 9, "1e+39 does not fit a float32, as a constant of float32 arithmetic must"),
    "lrn_even_size": (16, 1, "`size` must be odd"),
    "missing_required_key": (8, 1, "needs the key `filters`"),
    "missing_type": (14, 1, "needs `type = ...`"),
    "nested_calls": (12, 24, "values nest one level at most"),
    "misspelt_choice": (12, 11, "(did you mean `relu`?)"),
    "misspelt_input": (15, 10, "unknown input `covn1` (did you mean `conv1`?)"),
    "no_output_layer": (19, 1, "the last layer must be the output"),
    "not_utf8": (8, 1, "not UTF-8"),
    "only_comments": (1, 1, "no layers"),
    "output_not_last": (22, 1, "[fc2] reads `prob0` (the layer above it), a softmax output: only the loss reads an output"),
    "outputs_not_divisible_by_groups": (21, 1, "`outputs` 10 is not divisible by the 4 groups"),
    "pool_pad_too_big": (18, 1, "more than half the window"),
    "scale_too_small": (10, 1, "at scale 0.05 the input is 1x1"),
    "shape_size_of_5000_digits": (5, 11, "an integer of 5000 digits does not fit in 64 bits"),
    "si_scale_beyond_float": (12, 1, "scale 1e+308 enlarges the 3x32x32 input past the limit"),
    "syntax_bad_section_name": (14, 2, "unexpected `1`; expected a name"),
    "syntax_key_outside_section": (1, 1, "stands outside any section"),
    "syntax_missing_equals": (10, 9, "expected `=`"),
    "syntax_missing_value": (11, 10, "the line ends too soon"),
    "syntax_stray_character": (10, 12, "unexpected character `$`"),
    "syntax_two_values": (12, 16, "unexpected `tanh`"),
    "syntax_unclosed_section": (8, 7, "expected `]`"),
    "train_bad_schedule": (27, 12, "`step(g)` takes one factor"),
    "train_gamma_above_one": (28, 12, "at most 1, got 2"),
    "train_gamma_without_multistep": (28, 1, "`gamma` is the factor of `multistep`; schedule `step(0.5)` does not use it"),
    "train_milestone_after_last_epoch": (28, 25, "milestone 20 comes after the last epoch (10)"),
    "train_multistep_no_milestone": (27, 12, "needs at least one epoch"),
    "train_multistep_not_increasing": (28, 26, "milestones must increase: 20 comes after 30"),
    "train_multistep_not_integer": (27, 26, "a milestone is an epoch, a whole number; got `20.5`"),
    "train_resize_below_crop": (27, 10, "`resize` 16 is smaller than the 32x32 crop"),
    "train_scale_negative": (27, 9, "above 0, got -0.5"),
    "train_scale_zero": (27, 9, "above 0, got 0"),
    "train_unknown_key": (27, 1, "unknown key `learning_rate` for `train`"),
    "uniform_beyond_float32": (12, 11, "`uniform(low, high)` needs high - low to fit a float32"),
    "unknown_input": (15, 10, "unknown input `conv9` (did you mean `conv1`?)"),
    "unknown_key": (10, 1, "unknown key `filtres` for this layer type (did you mean `filters`?)"),
    "unknown_type": (9, 11, "unknown layer type `convv` (did you mean `conv`?)"),
    "wrong_shape_rank": (6, 9, "expected a shape C x H x W"),
    "wrong_type_float_for_int": (10, 11, "expected an integer, got `8.5`"),
    "wrong_type_number_for_name": (12, 11, "got `3`"),
    # issue 20's layer types and keys (tests/test_layer_types.py holds their values)
    "aux_loss_weight_negative": (20, 15, "expected a number at least 0, got -0.3"),
    "aux_output_read_later": (25, 1, "[fc3] reads `aux`, a softmax output: only the loss reads an output"),
    "batchnorm_affine_not_yes_no": (17, 10, "expected one of `yes`, `no`, got `true`"),
    "batchnorm_eps_zero": (17, 8, "expected a number above 0, got 0"),
    "batchnorm_momentum_above_one": (17, 12, "at most 1, got 1.5"),
    "batchnorm_reads_data_over_groups": (9, 1, "[bn0] a batchnorm reading the data layer, whole in every group, cannot split"),
    "conv_bias_a_word": (19, 11, "or `none`, got `no`"),
    "conv_channel_groups_not_dividing": (19, 1, "[conv2] the input's channel count 8 is not divisible by `channel_groups` 3"),
    "conv_channel_groups_with_net_groups": (19, 1, "`channel_groups` cannot be combined with [net] groups > 1"),
    "conv_round_misspelt": (19, 11, "got `ceiling` (did you mean `ceil`?)"),
    "init_msra_two_fans": (18, 11, "expected `msra` or `msra(in)`, `msra(out)`, `msra(avg)`"),
    "init_xavier_bad_fan": (18, 11, "expected `xavier` or `xavier(in)`, `xavier(out)`, `xavier(avg)`"),
    "local_beyond_parameter_limit": (10, 1, "[local1] has 68,279,271,424 parameters, which exceeds the limit of 2,147,483,647"),
    "local_channel_groups": (18, 1, "`channel_groups` is a key of conv, siconv layers; a `local` layer has none"),
    "lrn_bad_region": (16, 10, "expected one of `across`, `within`, got `inside`"),
    "lrn_within_even_size": (17, 1, "`size` must be odd: the window is centred on each pixel"),
    "max_coeffs": (23, 1, "`coeffs` is a key of sum layers; a `max` layer has none"),
    "max_shapes_differ": (21, 1, "inputs `conv1` (8x30x30) and `pool1` (8x15x15) differ in shape"),
    "neuron_brelu_zero": (18, 11, "so a must be above 0"),
    "neuron_leaky_without_slope": (18, 11, "`leaky` takes 1 number: `leaky(a)`"),
    "neuron_linear_one_argument": (16, 10, "`linear` takes 2 numbers: `linear(a, b)`"),
    "neuron_misspelt": (16, 10, "got `lekay(0.1)` (did you mean `leaky`?)"),
    "sum_coeffs_count": (23, 1, "[res] `coeffs` has 3 factors for 2 inputs"),
    "sum_data_and_split_layer": (17, 1, "cannot combine the data layer, whole in every group, with `conv1`"),
    "sum_one_input": (16, 1, "a `sum` layer reads two or more inputs"),
    "sum_shapes_differ": (22, 1, "inputs `conv1` (8x30x30) and `conv2` (8x28x28) differ in shape"),
}


def test_the_corpus_is_complete():
    on_disk = {path.stem for path in BROKEN.glob("*.net")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file_exits_2_pointing_at_the_fault(name, capsys, tmp_path):
    """With `-o`, so that faults only rendering the module finds are caught too."""
    path = str(BROKEN / f"{name}.net")
    line, col, phrase = EXPECTED[name]
    assert main(["compile", path, "-o", str(tmp_path / "out.py")]) == 2
    assert not (tmp_path / "out.py").exists()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"{path}:{line}:{col}: error: "), err
    assert phrase in err


@pytest.mark.parametrize("name", ["hostile_value_code", "binary_file", "hostile_name_dunder", "empty_file"])
def test_a_real_process_prints_one_line_and_no_traceback(name, tmp_path):
    pwned = Path("/tmp/netdsl_pwned")
    pwned.unlink(missing_ok=True)
    result = subprocess.run([sys.executable, "-m", "netdsl", "compile", str(BROKEN / f"{name}.net"),
                             "-o", str(tmp_path / "out.py")], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert ": error: " in result.stderr
    assert not (tmp_path / "out.py").exists() and not pwned.exists()


def test_missing_file_and_bad_flag_exit_2(tmp_path, capsys):
    assert main(["compile", str(tmp_path / "absent.net")]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'absent.net'}: error: no such file"
    with pytest.raises(SystemExit) as exit_info:
        main(["compile", "nets/alexnet.net", "--backend", "cuda"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cuda'" in capsys.readouterr().err
