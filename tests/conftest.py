"""Process-wide settings for the test run.

They must be in place before torch is imported anywhere: OpenMP's default spin-wait makes torch
20-50x slower whenever another process uses a core, and nothing may reach a model hub.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
