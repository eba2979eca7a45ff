"""Mixture-of-Experts feed-forward block: Switch top-1 and GShard top-2 routing.

Papers: Lepikhin et al. 2020, "GShard" (top-2 gating, groups, expert
capacity, random second-expert dispatch); Fedus et al. 2021, "Switch
Transformers" (top-1 routing, load-balancing loss, eq. 4); Zoph et al. 2022,
"ST-MoE" (router z-loss). Survey family: sparse models / conditional
computation. Attention is unchanged; the FFN costs O(N · d · mlp_dim · k / E)
per layer for N tokens, k experts per token out of E, and dispatch/combine
cost O(N · E · capacity · d) (quadratic in `group_size`, as in GShard).

    tokens x [B, L, d] (+ key-padding mask [B, L]) -> flat [B·L] -> groups
    [G, S] of S = min(group_size, B·L) tokens (the last group is padded with
    masked tokens)
    router: logits = x W_r (float32, no bias), probs = softmax(logits)
    top-1 (Switch): expert e1 = argmax probs, gate g1 = probs[e1]
    top-2 (GShard): e2 = argmax of probs without e1; g1, g2 renormalised to
        sum to one (before any drop)
    capacity C = min(S, ceil(capacity_factor · S · k / E)) slots per expert
    and group; capacity_factor_train when deterministic=False, else _eval.
    Positions: first come first served within the group (exclusive cumsum over
    the group); top-2 second choices queue after all kept first choices
    (GShard). A token past capacity is dropped for that expert.
    dispatch [G, S, E, C] (bool) and combine [G, S, E, C] (gate weights):
        expert_in [E, G, C, d] = einsum(dispatch, x)
        expert_out = Dense(GELU(Dense(expert_in)))    per expert, stacked
        y [G, S, d] = einsum(combine, expert_out)
    A token dropped by all its experts gets y = 0, so the block's residual
    carries it unchanged.

Padding: masked tokens (mask False, and the group padding) choose no expert,
take no capacity, get y = 0, and are left out of both auxiliary losses. So
padding in a batch never pushes a real token out of an expert. Groups are
formed across the batch (as in GShard/mtf), so which real tokens compete for
capacity depends on the batch layout, as in the papers.

Auxiliary losses, sown with `variables.add_aux_loss` in training only
(deterministic=False); the train step adds them (`variables.call_with_aux_loss`):
  "moe_load_balance": load_balance_weight · E · Σ_e f_e · P_e (Switch eq. 4),
      f_e = fraction of real tokens whose top-1 expert is e (before the
      capacity drop, as mtf), P_e = mean router probability of e; 1.0 for a
      uniform router.
  "moe_router_z": z_loss_weight · mean(logsumexp(logits)²) (ST-MoE eq. 5).

Expert weights are stacked [E, ...] nnx.Params annotated with the sharding
name `EXPERT_AXIS` ("expert") on their first axis (`out_sharding` metadata, created
with eager_sharding=False so no mesh is needed to build the model):
`nnx.get_partition_spec(nnx.state(model))` gives PartitionSpec("expert", ...)
for them, and a mesh with an "expert" axis (or sharding rules mapping it to a
data axis, or to None) shards the experts. The router is replicated.

Options (`config.model.moe`, a dict; `None` = no MoE; see `MOE_DEFAULTS`):
  num_experts (required), router "top1" | "top2" ("top1"),
  capacity_factor_train (1.25), capacity_factor_eval (2.0), group_size
  (1024 tokens), load_balance_weight (0.01), z_loss_weight (0.001),
  every (2: layer i is an MoE layer iff i % every == every - 1, i.e. every
  other layer starting with the second, as in Switch/GShard; 1 = all layers),
  expert_mlp_dim (None = the model's mlp_dim), router_jitter (0.0:
  multiplicative U(1-ε, 1+ε) noise on the router input in training, Switch),
  second_expert_policy "all" | "random" ("all"; GShard's "random" keeps the
  second expert with probability min(1, g2 / second_expert_threshold) in
  training), second_expert_threshold (0.2).

Deviations: experts are the encoder's own MLP shape (Dense with bias, GELU,
dropout, Dense with bias), so one expert of capacity ≥ tokens is exactly the
dense MLP; the router init is Switch's truncated normal with scale 0.1; the
load-balance statistics are averaged over all real tokens of the batch
rather than per group then over groups (identical for full groups without
padding); the random second-expert policy applies in training only
(evaluation keeps every second expert, so it needs no randomness).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from efficient_transformers.models.options import with_defaults
from efficient_transformers.models.variables import add_aux_loss

EXPERT_AXIS = "expert"
ROUTERS = {"top1": 1, "top2": 2}
SECOND_EXPERT_POLICIES = ("all", "random")
MOE_DEFAULTS = {
    "num_experts": None, "router": "top1", "capacity_factor_train": 1.25,
    "capacity_factor_eval": 2.0, "group_size": 1024,
    "load_balance_weight": 0.01, "z_loss_weight": 0.001, "every": 2,
    "expert_mlp_dim": None, "router_jitter": 0.0,
    "second_expert_policy": "all", "second_expert_threshold": 0.2,
}


def moe_options(moe: Mapping[str, Any] | None) -> dict[str, Any] | None:
  """`config.model.moe` (dict, ConfigDict or None) -> checked options or None."""
  if moe is None:
    return None
  options = with_defaults("moe", moe, MOE_DEFAULTS)
  if not isinstance(options["num_experts"], int) or options["num_experts"] < 1:
    raise ValueError("moe needs num_experts, a positive int; got"
                     f" {options['num_experts']!r}")
  if options["router"] not in ROUTERS:
    raise ValueError(f"unknown moe router {options['router']!r}; valid: {', '.join(ROUTERS)}")
  if options["second_expert_policy"] not in SECOND_EXPERT_POLICIES:
    raise ValueError(f"unknown moe second_expert_policy {options['second_expert_policy']!r};"
                     f" valid: {', '.join(SECOND_EXPERT_POLICIES)}")
  for key in ("capacity_factor_train", "capacity_factor_eval", "group_size", "every"):
    if not options[key] > 0:
      raise ValueError(f"moe {key} must be positive, got {options[key]!r}")
  return options


def is_moe_layer(options: Mapping[str, Any] | None, layer: int) -> bool:
  """Whether encoder layer `layer` (0-based) uses the MoE FFN."""
  return options is not None and layer % options["every"] == options["every"] - 1


def expert_capacity(group_tokens: int, num_experts: int, num_selected: int,
                    capacity_factor: float) -> int:
  """Slots per expert and group: min(S, ceil(capacity_factor · S · k / E))."""
  return min(group_tokens,
             math.ceil(capacity_factor * group_tokens * num_selected / num_experts))


def _exclusive_cumsum(x, axis):
  return jnp.cumsum(x, axis=axis) - x


def route(probs_GxSxE: jax.Array, mask_GxS: jax.Array, *, num_selected: int,
          capacity: int, keep_second_GxS: jax.Array | None = None
          ) -> tuple[jax.Array, jax.Array]:
  """Top-k routing with capacity: (combine [G, S, E, C] float32, dispatch bool).

  Args:
    probs_GxSxE: router probabilities (float32).
    mask_GxS: True = real token; masked tokens are routed nowhere.
    num_selected: 1 (Switch: gate = the top probability) or 2 (GShard: the
      two top probabilities renormalised to sum to one).
    capacity: C, slots per expert and group; earlier tokens win.
    keep_second_GxS: optional bool, False drops a token's second expert
      (GShard's random policy); default keeps all.
  """
  num_experts = probs_GxSxE.shape[-1]
  real_GxSx1 = mask_GxS[..., None].astype(jnp.float32)
  expert1_GxS = jnp.argmax(probs_GxSxE, axis=-1)
  choice1_GxSxE = jax.nn.one_hot(expert1_GxS, num_experts) * real_GxSx1
  gate1_GxS = jnp.sum(probs_GxSxE * choice1_GxSxE, axis=-1)
  position1_GxSxE = _exclusive_cumsum(choice1_GxSxE, axis=1)
  kept1_GxSxE = choice1_GxSxE * (position1_GxSxE < capacity)
  combine = (gate1_GxS[..., None, None] * kept1_GxSxE[..., None]
             * jax.nn.one_hot(position1_GxSxE.astype(jnp.int32), capacity))
  if num_selected == 2:
    others_GxSxE = probs_GxSxE * (1.0 - jax.nn.one_hot(expert1_GxS, num_experts))
    expert2_GxS = jnp.argmax(others_GxSxE, axis=-1)
    choice2_GxSxE = jax.nn.one_hot(expert2_GxS, num_experts) * real_GxSx1
    # With one expert there is no second choice.
    choice2_GxSxE *= (expert2_GxS != expert1_GxS)[..., None]
    gate2_GxS = jnp.sum(others_GxSxE * choice2_GxSxE, axis=-1)
    norm_GxS = gate1_GxS + gate2_GxS + 1e-9
    if keep_second_GxS is not None:
      choice2_GxSxE *= keep_second_GxS[..., None]
    # Second choices queue after every kept first choice of the group.
    position2_GxSxE = (_exclusive_cumsum(choice2_GxSxE, axis=1)
                       + jnp.sum(kept1_GxSxE, axis=1, keepdims=True))
    kept2_GxSxE = choice2_GxSxE * (position2_GxSxE < capacity)
    combine = (combine + gate2_GxS[..., None, None] * kept2_GxSxE[..., None]
               * jax.nn.one_hot(position2_GxSxE.astype(jnp.int32), capacity))
    combine = combine / norm_GxS[..., None, None]
  return combine, combine > 0


def router_losses(logits_NxE: jax.Array, probs_NxE: jax.Array,
                  mask_N: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(load-balancing loss E · Σ_e f_e P_e, z-loss mean(logsumexp²)), real tokens only."""
  num_experts = probs_NxE.shape[-1]
  real_N = mask_N.astype(jnp.float32)
  count = jnp.maximum(real_N.sum(), 1.0)
  top1_NxE = jax.nn.one_hot(jnp.argmax(probs_NxE, -1), num_experts)
  fraction_E = jnp.einsum("ne,n->e", top1_NxE, real_N) / count
  mean_prob_E = jnp.einsum("ne,n->e", probs_NxE, real_N) / count
  load_balance = num_experts * jnp.sum(fraction_E * mean_prob_E)
  z_loss = jnp.sum(jax.nn.logsumexp(logits_NxE, axis=-1) ** 2 * real_N) / count
  return load_balance, z_loss


class MoEFeedForward(nnx.Module):
  """Routed expert MLPs in place of the Transformer MLP: [B, L, d] -> [B, L, d].

  Args:
    emb_dim: width d.
    mlp_dim: hidden width of each expert (moe["expert_mlp_dim"] overrides).
    moe: options (module docstring); checked by `moe_options`.
    dropout_rate: dropout after each expert's GELU (as the dense MLP).
    rngs: parameter initialisation.
  """

  def __init__(self, emb_dim: int, mlp_dim: int, *, moe: Mapping[str, Any],
               dropout_rate: float = 0.1, rngs: nnx.Rngs):
    self.options = moe_options(moe)
    self.num_experts = e = self.options["num_experts"]
    self.num_selected = ROUTERS[self.options["router"]]
    h = self.options["expert_mlp_dim"] or mlp_dim
    kernel_init = jax.nn.initializers.xavier_uniform(batch_axis=(0,))
    bias_init = jax.nn.initializers.normal(1e-6)

    def expert_param(init, shape):
      return nnx.Param(init(rngs.params(), shape), eager_sharding=False,
                       out_sharding=(EXPERT_AXIS,) + (None,) * (len(shape) - 1))

    self.router = nnx.Param(jax.nn.initializers.variance_scaling(
        0.1, "fan_in", "truncated_normal")(rngs.params(), (emb_dim, e)))
    self.wi = expert_param(kernel_init, (e, emb_dim, h))
    self.bi = expert_param(bias_init, (e, h))
    self.wo = expert_param(kernel_init, (e, h, emb_dim))
    self.bo = expert_param(bias_init, (e, emb_dim))
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x: jax.Array, *, mask: jax.Array | None = None,
               deterministic: bool, rngs: nnx.Rngs | None = None) -> jax.Array:
    """x [B, L, d], mask bool [B, L] (True = real) -> [B, L, d] (0 where dropped)."""
    options = self.options
    batch, length, d = x.shape
    n = batch * length
    s = min(options["group_size"], n)
    g = -(-n // s)
    mask_N = (jnp.ones((n,), bool) if mask is None else mask.reshape(n))
    x_NxD = x.reshape(n, d)
    x_GxSxD = jnp.pad(x_NxD, ((0, g * s - n), (0, 0))).reshape(g, s, d)
    mask_GxS = jnp.pad(mask_N, (0, g * s - n)).reshape(g, s)

    router_in = x_GxSxD.astype(jnp.float32)
    training = not deterministic
    if training and options["router_jitter"] > 0:
      eps = options["router_jitter"]
      router_in *= jax.random.uniform(rngs.dropout(), router_in.shape,
                                      minval=1.0 - eps, maxval=1.0 + eps)
    logits_GxSxE = router_in @ self.router[...].astype(jnp.float32)
    probs_GxSxE = jax.nn.softmax(logits_GxSxE, axis=-1)

    keep_second = None
    if training and self.num_selected == 2 and options["second_expert_policy"] == "random":
      top2_GxSx2 = jax.lax.top_k(probs_GxSxE, 2)[0]
      gate2_GxS = top2_GxSx2[..., 1] / (top2_GxSx2.sum(-1) + 1e-9)
      keep_second = (jax.random.uniform(rngs.dropout(), gate2_GxS.shape)
                     < gate2_GxS / options["second_expert_threshold"])
    factor = options["capacity_factor_train" if training else "capacity_factor_eval"]
    capacity = expert_capacity(s, self.num_experts, self.num_selected, factor)
    combine_GxSxExC, dispatch_GxSxExC = route(
        probs_GxSxE, mask_GxS, num_selected=self.num_selected, capacity=capacity,
        keep_second_GxS=keep_second)

    expert_in_ExGxCxD = jnp.einsum("gsec,gsd->egcd",
                                   dispatch_GxSxExC.astype(x.dtype), x_GxSxD)
    hidden = jnp.einsum("egcd,edh->egch", expert_in_ExGxCxD,
                        self.wi[...].astype(x.dtype))
    hidden = jax.nn.gelu(hidden + self.bi[...].astype(x.dtype)[:, None, None])
    hidden = self.dropout(hidden, deterministic=deterministic, rngs=rngs)
    expert_out_ExGxCxD = (jnp.einsum("egch,ehd->egcd", hidden,
                                     self.wo[...].astype(x.dtype))
                          + self.bo[...].astype(x.dtype)[:, None, None])
    y_GxSxD = jnp.einsum("gsec,egcd->gsd", combine_GxSxExC.astype(x.dtype),
                         expert_out_ExGxCxD)

    if training:
      load_balance, z_loss = router_losses(
          logits_GxSxE.reshape(g * s, -1), probs_GxSxE.reshape(g * s, -1),
          mask_GxS.reshape(g * s))
      add_aux_loss(self, "moe_load_balance", options["load_balance_weight"] * load_balance)
      add_aux_loss(self, "moe_router_z", options["z_loss_weight"] * z_loss)
    return y_GxSxD.reshape(g * s, d)[:n].reshape(batch, length, d)

  def num_params_per_token(self) -> int:
    """Parameters a real token activates: the router and k experts' MLPs."""
    return self.router.get_value().size + self.num_selected * self.num_expert_params() // self.num_experts

  def num_expert_params(self) -> int:
    """Parameters of all experts (the router excluded)."""
    return sum(p.get_value().size for p in (self.wi, self.bi, self.wo, self.bo))


def activated_params(model: nnx.Module) -> tuple[int, int]:
  """(all nnx.Param scalars, scalars one token activates): the second counts
  every non-expert parameter (embedding tables in full) plus, in each MoE
  layer, the router and k experts."""
  total = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  activated = total
  for _, node in nnx.iter_graph(model):
    if isinstance(node, MoEFeedForward):
      activated += node.num_params_per_token() - node.num_expert_params() - node.router.get_value().size
  return total, activated
