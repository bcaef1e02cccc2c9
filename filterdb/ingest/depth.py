"""Graph depth and the published ``conv_depth`` / ``conv_depth_norm``.

* graph depth of a node: the longest path (in nodes) from a graph input to that node; tensors that
  do not depend on any graph input (initialisers, constants, dequantised weights) add nothing;
* ``conv_depth``: the rank (0, 1, ...) of a conv layer's graph depth among all distinct graph depths
  of the model that hold a 4-D conv of any kernel size; layers at the same depth share it;
* ``conv_depth_norm = conv_depth / (levels - 1)``; a model with a single conv level gets 0.0
  (the published definition divides by zero there);
* files without a graph (state dicts, safetensors, Keras weights without a model config): each conv
  weight is its own level in file order (``depth_source = "weight_order"``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence


def graph_depths(
    nodes: Sequence[tuple[Iterable[Hashable], Iterable[Hashable], float]], graph_inputs: Iterable[Hashable]
) -> list[float | None]:
    """Depth of every node of a DAG.

    A node's depth is ``weight + max(depth of its inputs)`` over inputs that depend on a graph
    input (graph inputs have depth 0); a node none of whose inputs depends on a graph input is a
    constant (``None``). Node order does not matter (topological order is computed).

    Parameters
    ----------
    nodes : sequence of (iterable, iterable, float)
        Per node: its input tensor names, its output tensor names, its weight (levels it adds).
    graph_inputs : iterable
        Names of the graph's input tensors.

    Returns
    -------
    list of float or None
        Per node, in the order of ``nodes``.

    Raises
    ------
    ValueError
        The graph has a cycle.
    """
    nodes = [(list(i), list(o), w) for i, o, w in nodes]
    producer: dict = {}
    for k, (_, outs, _) in enumerate(nodes):
        for t in outs:
            producer[t] = k
    inputs = set(graph_inputs)
    depth: list = [None] * len(nodes)
    state = [0] * len(nodes)  # 0 new, 1 on stack, 2 done
    for root in range(len(nodes)):
        if state[root]:
            continue
        stack = [root]
        while stack:
            k = stack[-1]
            if state[k] == 0:
                state[k] = 1
                for t in nodes[k][0]:
                    p = producer.get(t)
                    if p is not None and t not in inputs:
                        if state[p] == 1:
                            raise ValueError("the graph has a cycle")
                        if state[p] == 0:
                            stack.append(p)
                continue
            stack.pop()
            if state[k] == 2:
                continue
            best = None
            for t in nodes[k][0]:
                if t in inputs:
                    d = 0.0
                else:
                    p = producer.get(t)
                    d = depth[p] if p is not None else None
                if d is not None and (best is None or d > best):
                    best = d
            depth[k] = None if best is None else best + nodes[k][2]
            state[k] = 2
    return depth


def conv_levels(depths: Sequence[float]) -> tuple[list[int], list[float], int]:
    """Rank the depths of a model's 4-D convs.

    Parameters
    ----------
    depths : sequence of float
        The graph depth (or file position) of each 4-D conv of a model.

    Returns
    -------
    (list of int, list of float, int)
        Per conv its ``conv_depth`` (rank among the distinct depths) and ``conv_depth_norm``
        (``conv_depth / (levels - 1)``, 0.0 for a single level), and the number of levels.
    """
    levels = sorted(set(depths))
    rank = {d: i for i, d in enumerate(levels)}
    n = len(levels)
    cd = [rank[d] for d in depths]
    norm = [c / (n - 1) if n > 1 else 0.0 for c in cd]
    return cd, norm, n
