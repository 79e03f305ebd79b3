"""Benchmark records name the CPU by family, model and vector unit: one model name covers machines that differ."""

from mlxsft.machine import cpu_description

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw

processor\t: 1
cpu family\t: 99
model name\t: something else
"""


def test_family_model_and_widest_vector_unit_of_the_first_processor(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(ZEN4)
    assert cpu_description(info) == "AMD EPYC (family 25 model 17, avx512)"


def test_avx2_only_and_a_missing_file(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(ZEN4.replace(" avx512f avx512bw", ""))
    assert cpu_description(info) == "AMD EPYC (family 25 model 17, avx2)"
    assert cpu_description(tmp_path / "absent")  # falls back to platform's name, never raises
