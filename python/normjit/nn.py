"""Modules over the normjit ops.

RMSNorm and LayerNorm take the arguments of torch.nn.RMSNorm and
torch.nn.LayerNorm and have the same parameters, so each loads the other's
state_dict unchanged. FusedAddRMSNorm and FusedAddLayerNorm are the fused
residual-add forms engines call: forward(x, residual) -> (y, residual).
A normalized_shape of several dimensions is normalized as one flattened
last dimension (the same result).
"""
import numbers

import torch

from . import ops


def _shape(normalized_shape):
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(d) for d in normalized_shape)


class _Norm(torch.nn.Module):
    def __init__(self, normalized_shape, eps, elementwise_affine, bias, device, dtype, cast,
                 weight_plus_one):
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self.cast = cast
        self.weight_plus_one = weight_plus_one
        ops.cast_code(cast)  # a bad name fails here, not at the first forward
        factory = {"device": device, "dtype": dtype}
        if elementwise_affine:
            self.weight = torch.nn.Parameter(torch.empty(self.normalized_shape, **factory))
            if bias:
                self.bias = torch.nn.Parameter(torch.empty(self.normalized_shape, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            # Weights that scale by 1 + w start at zero, as Gemma's do.
            if self.weight_plus_one or self.cast == "gemma":
                torch.nn.init.zeros_(self.weight)
            else:
                torch.nn.init.ones_(self.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def _flat(self, x, *more):
        """x (and `more`, as views) with the normalized dimensions as one, and the
        parameters flattened to match."""
        n = len(self.normalized_shape)
        if tuple(x.shape[-n:]) != self.normalized_shape:
            raise ValueError(f"{type(self).__name__}: input shape {tuple(x.shape)} does not end "
                             f"in normalized_shape {self.normalized_shape}")
        if n == 1:
            return (x, *more, self.weight, self.bias)
        flat = lambda t: None if t is None else t.flatten(-n)  # noqa: E731
        return (flat(x), *(t.view(flat(x).shape) for t in more), flat(self.weight),
                flat(self.bias))

    def _eps(self, x):
        return torch.finfo(x.dtype).eps if self.eps is None else self.eps

    def extra_repr(self):
        s = f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        if self.cast != "none":
            s += f", cast={self.cast!r}"
        if self.weight_plus_one:
            s += ", weight_plus_one=True"
        return s


class RMSNorm(_Norm):
    """torch.nn.RMSNorm on normjit: same arguments (eps=None: the input dtype's epsilon,
    as torch), same parameter; cast and weight_plus_one as normjit.rms_norm's."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None,
                 dtype=None, *, cast="none", weight_plus_one=False):
        super().__init__(normalized_shape, eps, elementwise_affine, False, device, dtype, cast,
                         weight_plus_one)

    def forward(self, x):
        xf, w, _ = self._flat(x)
        y = ops.rms_norm(xf, w, self._eps(x), weight_plus_one=self.weight_plus_one,
                         cast=self.cast)
        return y if xf is x else y.view(x.shape)


class LayerNorm(_Norm):
    """torch.nn.LayerNorm on normjit: same arguments and parameters (weight, bias)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None, *, cast="none", weight_plus_one=False):
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype, cast,
                         weight_plus_one)

    def forward(self, x):
        xf, w, b = self._flat(x)
        y = ops.layer_norm(xf, w, b, self.eps, weight_plus_one=self.weight_plus_one,
                           cast=self.cast)
        return y if xf is x else y.view(x.shape)


class FusedAddRMSNorm(RMSNorm):
    """residual = x + residual (rounded to residual's dtype), y = RMSNorm(residual):
    forward(x, residual) -> (y, residual). With inplace=True the sum is written into
    the given residual (the engines' form; when autograd records the call a new tensor
    is returned instead); by default it is a new tensor."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None,
                 dtype=None, *, cast="none", weight_plus_one=False, inplace=False):
        super().__init__(normalized_shape, eps, elementwise_affine, device, dtype, cast=cast,
                         weight_plus_one=weight_plus_one)
        self.inplace = inplace

    def forward(self, x, residual):
        xf, rf, w, _ = self._flat(x, residual)
        if self.inplace:
            y, s = ops.fused_add_rms_norm(xf, rf, w, self._eps(x),
                                          weight_plus_one=self.weight_plus_one, cast=self.cast)
        else:
            y, s = ops._FUSED_ADD_RMS_NORM(xf, rf, w, self._eps(x), None,
                                           self.weight_plus_one, ops.cast_code(self.cast))
        return (y, s) if xf is x else (y.view(x.shape), s.view(x.shape))


class FusedAddLayerNorm(LayerNorm):
    """FusedAddRMSNorm with LayerNorm (weight and bias as torch.nn.LayerNorm's)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None, *, cast="none", weight_plus_one=False, inplace=False):
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype,
                         cast=cast, weight_plus_one=weight_plus_one)
        self.inplace = inplace

    def forward(self, x, residual):
        xf, rf, w, b = self._flat(x, residual)
        if self.inplace:
            y, s = ops.fused_add_layer_norm(xf, rf, w, b, self.eps,
                                            weight_plus_one=self.weight_plus_one, cast=self.cast)
        else:
            y, s = ops._FUSED_ADD_LAYER_NORM(xf, rf, w, b, self.eps, None,
                                             self.weight_plus_one, ops.cast_code(self.cast))
        return (y, s) if xf is x else (y.view(x.shape), s.view(x.shape))
