import torch
import torch.nn.functional as F

from sparsercnn.model.instance_interaction import DynamicConv, StaticInteraction


def reference_dynamic_conv(
    module: DynamicConv, q: torch.Tensor, rois: torch.Tensor
) -> torch.Tensor:
    """Spec 5.1 steps 4-7 one proposal at a time, straight from the layer's weights."""
    d, dd = module.hidden_dim, module.dynamic_dim
    outputs = []
    for k in range(q.shape[0]):
        params = module.dynamic_layer.weight @ q[k] + module.dynamic_layer.bias
        kernel_in = params[: d * dd].reshape(d, dd)
        kernel_out = params[d * dd :].reshape(dd, d)
        x = F.relu(module.norm_in(rois[k] @ kernel_in))
        x = F.relu(module.norm_out(x @ kernel_out))
        outputs.append(x.flatten())
    return F.relu(module.out_norm(module.out_layer(torch.stack(outputs))))


def make_inputs(num_rois: int = 5) -> tuple[DynamicConv, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    module = DynamicConv(hidden_dim=16, dynamic_dim=4, pooler_resolution=3).double()
    q = torch.randn(num_rois, 16, dtype=torch.float64)
    rois = torch.randn(num_rois, 9, 16, dtype=torch.float64)
    return module, q, rois


def test_dynamic_conv_matches_per_proposal_reference_with_and_without_autograd() -> None:
    module, q, rois = make_inputs()
    expected = reference_dynamic_conv(module, q, rois)
    trained = module(q, rois)
    with torch.no_grad():
        inferred = module(q, rois)
    torch.testing.assert_close(trained, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(inferred, expected, rtol=1e-12, atol=1e-12)
    assert trained.requires_grad and not inferred.requires_grad


def test_generated_kernels_are_the_rows_of_the_dynamic_layer() -> None:
    module, q, _ = make_inputs(num_rois=3)
    params = module.dynamic_layer(q).detach()
    with torch.no_grad():
        kernel_in, kernel_out = module.generate_kernels(q)
    assert kernel_in.shape == (3, 16, 4) and kernel_out.shape == (3, 4, 16)
    torch.testing.assert_close(kernel_in.flatten(1), params[:, :64])
    torch.testing.assert_close(kernel_out.flatten(1), params[:, 64:])


def test_static_interaction_ignores_proposal_features() -> None:
    torch.manual_seed(0)
    module = StaticInteraction(hidden_dim=16, dynamic_dim=4, pooler_resolution=3)
    rois = torch.randn(4, 9, 16)
    out = module(torch.randn(4, 16), rois)
    torch.testing.assert_close(out, module(torch.randn(4, 16), rois))
    assert out.shape == (4, 16)
