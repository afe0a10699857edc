// Large blocks kept for the next training step (rnnkit/softmax.py's logits).
//
// glibc's malloc hands every block above 32 MiB back to the system when it is freed, even
// with the commands' allocator setting (32 MiB is the most its threshold takes), so a step
// that allocates its (N, V) logits afresh takes a page fault per 4 KiB page it touches. A
// tensor made by kept_empty gives its block to a small cache when its last user lets go
// (a backward pass done with it, a graph freed); the next request that the block fits
// takes it back, its pages still mapped. Like malloc's own free lists this is state of
// the process: at most kKept blocks, none of them in use.

#include "common.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>

namespace rnnkit {
namespace {

class BlockCache {
 public:
  // never destroyed: a tensor may let go of its block during the process's exit
  static BlockCache& get() {
    static auto* cache = new BlockCache();
    return *cache;
  }

  // A block of at least `bytes` (and at most twice that, so no block is wasted on a small
  // request) and its size.
  std::pair<void*, size_t> take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
        if (it->second >= bytes && it->second / 2 <= bytes) {
          const auto block = *it;
          blocks_.erase(it);
          return block;
        }
      }
    }
    void* p = nullptr;
    if (posix_memalign(&p, 64, bytes) != 0) throw std::bad_alloc();
    return {p, bytes};
  }

  // Keeps the block, the newest kKept of them.
  void give(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    blocks_.emplace_back(p, bytes);
    while (blocks_.size() > kKept) {
      std::free(blocks_.front().first);
      blocks_.erase(blocks_.begin());
    }
  }

 private:
  static constexpr size_t kKept = 2;
  std::mutex mu_;
  std::vector<std::pair<void*, size_t>> blocks_;
};

}  // namespace

Tensor kept_empty(int64_t rows, int64_t cols, const Tensor& like) {
  TORCH_CHECK(rows >= 0 && cols >= 0 && like.device().is_cpu(), "kept_empty: sizes >= 0, a CPU tensor's type");
  const size_t bytes = std::max<size_t>(1, static_cast<size_t>(rows * cols) * like.element_size());
  const auto [p, size] = BlockCache::get().take(bytes);
  return at::from_blob(p, {rows, cols}, [size = size](void* q) { BlockCache::get().give(q, size); },
                       like.options());
}

}  // namespace rnnkit
