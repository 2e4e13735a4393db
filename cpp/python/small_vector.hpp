// SmallVector: the per-call lists of a binding (arrays, tensors, steps) without heap
// allocation for the few sets of a typical call.
#pragma once

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace fastadam::python {

// A vector of trivially copyable T with room for N elements inside itself: the per-call lists
// of a small step cost no heap allocation.
template <class T, std::size_t N>
class SmallVector {
    static_assert(std::is_trivially_copyable_v<T>);

public:
    SmallVector() = default;
    SmallVector(std::size_t n, const T& value) { assign(n, value); }
    SmallVector(const SmallVector& o) { append(o.data(), o.size()); }
    SmallVector& operator=(const SmallVector& o) {
        if (this != &o) {
            size_ = 0;
            append(o.data(), o.size());
        }
        return *this;
    }
    ~SmallVector() {
        if (data_ != inline_) delete[] data_;
    }
    void assign(std::size_t n, const T& value) {
        size_ = 0;
        reserve(n);
        for (std::size_t i = 0; i < n; ++i) data_[i] = value;
        size_ = n;
    }
    void push_back(const T& value) {
        if (size_ == capacity_) reserve(2 * capacity_);
        data_[size_++] = value;
    }
    void reserve(std::size_t n) {
        if (n <= capacity_) return;
        T* bigger = new T[n];
        if (size_ != 0) std::memcpy(static_cast<void*>(bigger), data_, size_ * sizeof(T));
        if (data_ != inline_) delete[] data_;
        data_ = bigger;
        capacity_ = n;
    }
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    T* data() { return data_; }
    const T* data() const { return data_; }
    T& operator[](std::size_t i) { return data_[i]; }
    const T& operator[](std::size_t i) const { return data_[i]; }
    T* begin() { return data_; }
    T* end() { return data_ + size_; }
    const T* begin() const { return data_; }
    const T* end() const { return data_ + size_; }

private:
    void append(const T* p, std::size_t n) {
        reserve(size_ + n);
        if (n != 0) std::memcpy(static_cast<void*>(data_ + size_), p, n * sizeof(T));
        size_ += n;
    }
    T inline_[N];
    T* data_ = inline_;
    std::size_t size_ = 0, capacity_ = N;
};

}  // namespace fastadam::python
