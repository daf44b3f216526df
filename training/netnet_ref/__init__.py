"""PyTorch/numpy reference for netnet (NETNet, CVPR 2020, on SSD/VGG16).

Modules:
  safetensors_io  pure-numpy safetensors reader/writer (F32 only)
  config          network definitions, width scaling, metadata build/parse
  priors          SSD prior boxes (numpy, float64)
  box_utils       decode, softmax, per-class NMS (numpy)
  macs            multiply-accumulate counter (needs torch)
  model           NETNet nn.Module (needs torch)

Only `model`, `macs` and `init` import torch; the rest runs under any python3 with numpy.
"""
