"""Devices: where a model runs.

    placement.py    GPU groups spread over devices, one device a group (AlexNet's two GPUs)
    distributed.py  data parallelism under torchrun: the processes, their devices, their sums
"""
