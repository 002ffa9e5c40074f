// Cooperative groups' tiled partitions on the VM, for tests/sweep_cg.rs.
//
// Work split: one block of 128 threads, one int input per thread. Each kernel writes one int per
// thread and per result column: out[k * 128 + t].

#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
#include <cooperative_groups/scan.h>

namespace cg = cooperative_groups;

constexpr int BLOCK = 128;

extern "C" __global__ void __launch_bounds__(BLOCK)
sweep_cg_tiles(const int* __restrict__ in, int* __restrict__ out) {
    cg::thread_block block = cg::this_thread_block();
    const int t = block.thread_rank();
    const int v = in[t];
    auto t16 = cg::tiled_partition<16>(block);
    auto t8 = cg::tiled_partition<8>(block);
    auto t4 = cg::tiled_partition<4>(block);
    int k = 0;
#define O(e) out[(k++) * BLOCK + t] = (e)
    O(cg::reduce(t16, v, cg::plus<int>()));
    O(cg::reduce(t8, v, cg::greater<int>()));
    O(cg::reduce(t4, v, cg::less<int>()));
    O(cg::inclusive_scan(t16, v));
    O(cg::exclusive_scan(t8, v, cg::plus<int>()));
    O(t16.shfl(v, 3));
    O(t8.shfl_down(v, 1));
    O(t8.shfl_up(v, 2));
    O(t4.shfl_xor(v, 1));
    O(t16.any(v > 90));
    O(t16.all(v > 5));
    O((int)t16.ballot(v % 2 == 0));
    O((int)t16.match_any(v % 4));
    O((int)t16.thread_rank());
    O((int)t16.meta_group_rank());
    O((int)t8.num_threads());
    // A runtime-sized partition.
    cg::thread_group tg = cg::tiled_partition(block, 8);
    O((int)tg.thread_rank());
    block.sync();
    // Divergence: coalesced_threads() is the set of lanes that took the branch.
    int c_rank = -1;
    int c_size = -1;
    int c_sum = -1;
    if (v % 3 == 0) {
        cg::coalesced_group active = cg::coalesced_threads();
        c_rank = active.thread_rank();
        c_size = active.num_threads();
        c_sum = cg::reduce(active, v, cg::plus<int>());
    }
    O(c_rank);
    O(c_size);
    O(c_sum);
    // labeled_partition: groups of the warp by v % 5.
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    cg::coalesced_group lab = cg::labeled_partition(warp, v % 5);
    O((int)lab.thread_rank());
    O((int)lab.num_threads());
    O(cg::reduce(lab, v, cg::plus<int>()));
    block.sync();
#undef O
}
