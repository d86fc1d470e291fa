"""Checks our rank layout and groups against DeepSpeed's PipeModelDataParallelTopology.

Usage: check_topology.py COMM_PROBE. The probe prints our layouts as JSON (`comm_probe topology P D
...`); for each (pipe, data) DeepSpeed's topology (model axis of size 1) must give the same
coordinates per rank, the same data-parallel and pipeline groups (get_axis_comm_lists), the same
next-stage partner (PipelineParallelGrid's p2p buddy, without its wrap-around) and the same tied
groups (first and last stage of each data index, found with get_rank).
"""
import json
import subprocess
import sys

from deepspeed.runtime.pipe.topology import PipeModelDataParallelTopology

LAYOUTS = [(1, 1), (1, 4), (2, 1), (2, 2), (4, 2), (2, 4), (3, 2), (8, 1), (1, 8), (4, 4), (3, 5)]


def main():
    args = [str(x) for pd in LAYOUTS for x in pd]
    ours = json.loads(subprocess.run([sys.argv[1], "topology", *args], check=True, capture_output=True,
                                     text=True).stdout)
    assert len(ours) == len(LAYOUTS)
    for (p, d), got in zip(LAYOUTS, ours):
        topo = PipeModelDataParallelTopology(num_pp=p, num_mp=1, num_dp=d)
        n = topo.world_size()
        where = f"pipe={p} data={d}"
        assert (got["pipe"], got["data"]) == (p, d), where
        coords = [[c.pipe, c.data, c.model] for c in (topo.get_coord(r) for r in range(n))]
        assert got["coords"] == coords, f"{where}: coordinates {got['coords']} != {coords}"
        assert got["data_groups"] == topo.get_axis_comm_lists("data"), f"{where}: data-parallel groups"
        assert got["pipe_groups"] == topo.get_axis_comm_lists("pipe"), f"{where}: pipeline groups"
        for rank, nxt in got["next"]:
            lst = next(l for l in topo.get_axis_comm_lists("pipe") if rank in l)
            i = lst.index(rank)
            want = lst[i + 1] if i + 1 < len(lst) else -1
            assert nxt == want, f"{where}: next stage of rank {rank} is {nxt}, DeepSpeed's partner {want}"
        tied = [] if p == 1 else [[topo.get_rank(pipe=0, data=x, model=0), topo.get_rank(pipe=p - 1, data=x, model=0)]
                                  for x in range(d)]
        assert got["tied_groups"] == tied, f"{where}: tied groups {got['tied_groups']} != {tied}"
        print(f"ok: {where} ({n} ranks) matches PipeModelDataParallelTopology")


if __name__ == "__main__":
    main()
