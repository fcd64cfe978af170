"""Run a loaded HuggingFace transformers model's norms on normjit.

    model = AutoModelForCausalLM.from_pretrained(...)
    n = normjit.hf.patch_model(model)       # how many norm modules now run on normjit

Each norm module keeps its object, class identity (isinstance still holds),
parameters (the same tensors) and state_dict; only its forward is replaced,
by one that rounds where that model's own code rounds (the cast mode):

- Llama, Qwen2, Qwen3, Mistral: normalize in fp32, round to the input dtype,
  multiply by the weight (the result has the dtype of that product):
  cast "llama";
- Gemma, Gemma 2, Gemma 3: fp32 throughout with 1 + weight, rounded once to
  the input dtype: cast "gemma".

The forward is replaced by giving each module a subclass of its own class
(made at run time), so pickling a whole patched module (torch.save(model),
not its state_dict) needs unpatch_model first.

The attention q_norm/k_norm of Qwen3 and Gemma 3 are instances of the same
classes; Gemma 3 passes them [batch, heads, seq, head_dim] views of a
[batch, seq, heads, head_dim] projection, which run through the per-head
QK-norm op without a copy.
"""
import torch

from . import ops

# The class names this module knows, the cast their forward uses, and the
# attribute holding eps (checked against transformers' modeling code).
NORMS = {
    "LlamaRMSNorm": ("llama", "variance_epsilon"),
    "Qwen2RMSNorm": ("llama", "variance_epsilon"),
    "Qwen3RMSNorm": ("llama", "variance_epsilon"),
    "MistralRMSNorm": ("llama", "variance_epsilon"),
    "GemmaRMSNorm": ("gemma", "eps"),
    "Gemma2RMSNorm": ("gemma", "eps"),
    "Gemma3RMSNorm": ("gemma", "eps"),
}


def _llama_forward(self, x):
    # LlamaRMSNorm: self.weight * normalize(x.float()).to(x.dtype): the product's dtype.
    out_dtype = torch.promote_types(self.weight.dtype, x.dtype)
    return _norm(x, self.weight, self.variance_epsilon, "llama", out_dtype)


def _gemma_forward(self, x):
    # GemmaRMSNorm: (normalize(x.float()) * (1 + self.weight.float())).type_as(x).
    return _norm(x, self.weight, self.eps, "gemma", x.dtype)


def _norm(x, weight, eps, cast, out_dtype):
    code = ops.cast_code(cast)
    if x.dim() == 4 and out_dtype == x.dtype and x.transpose(1, 2).is_contiguous():
        # [batch, heads, seq, head_dim] over a [batch, seq, heads, head_dim] buffer (Gemma 3's
        # q and k): per-head norm of the untransposed view, no copy; same layout back.
        return ops._QK_RMS_NORM(x.transpose(1, 2), weight, eps, code).transpose(1, 2)
    return ops._RMS_NORM(x, weight, eps, out_dtype, False, code)


_FORWARDS = {"llama": _llama_forward, "gemma": _gemma_forward}
_patched_classes = {}


def _patched_class(cls, cast):
    """A subclass of cls whose forward is normjit's (one per original class)."""
    patched = _patched_classes.get(cls)
    if patched is None:
        patched = type(cls.__name__, (cls,), {
            "forward": _FORWARDS[cast],
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "_normjit_original_class": cls,
        })
        _patched_classes[cls] = patched
    return patched


def patch_model(model):
    """Make every norm module of `model` that NORMS names run on normjit (weights
    shared, state_dict unchanged). Returns how many modules were patched; a module
    already patched is not counted again."""
    count = 0
    for module in model.modules():
        cls = type(module)
        if getattr(cls, "_normjit_original_class", None) is not None:
            continue
        known = NORMS.get(cls.__name__)
        if known is None or not hasattr(module, known[1]) or \
                getattr(module, "weight", None) is None:
            continue
        module.__class__ = _patched_class(cls, known[0])
        count += 1
    return count


def unpatch_model(model):
    """Undo patch_model; returns how many modules were restored."""
    count = 0
    for module in model.modules():
        original = getattr(type(module), "_normjit_original_class", None)
        if original is not None:
            module.__class__ = original
            count += 1
    return count
