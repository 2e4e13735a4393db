// Named-field construction of the public structs (hyper-parameters and tensors): each setter
// names the field it sets and returns a new builder, so a call site reads like keyword
// arguments and stays right when a struct gains or reorders fields, where positional aggregate
// initialisation would shift silently. Unset fields keep the struct's defaults.
//
//   const fastadam::AdamHyper hyper = fastadam::adam_hyper().lr(0.05).weight_decay(0.01);
//   fastadam::AdamTensor<float> t = fastadam::adam_tensor<float>()
//       .param(w).grad(g).exp_avg(m).exp_avg_sq(v).size(n)
//       .scalars(fastadam::make_scalars(hyper, step));
#pragma once

#include <cstdint>

#include "fastadam/kernels.hpp"

namespace fastadam {

// The builders' common part: the value under construction, read with build() or by conversion.
template <class Built, class Self>
class Fields {
public:
    using type = Built;
    constexpr type build() const { return value_; }
    constexpr operator type() const { return value_; }

protected:
    // Owner: the struct or a base of it that declares the member.
    template <class Member, class Owner, class Value>
    constexpr Self with(Member Owner::* member, Value value) const {
        Self copy = static_cast<const Self&>(*this);
        copy.value_.*member = value;
        return copy;
    }
    type value_{};
};

class AdamHyperFields : public Fields<AdamHyper, AdamHyperFields> {
public:
    constexpr AdamHyperFields lr(double v) const { return with(&type::lr, v); }
    constexpr AdamHyperFields beta1(double v) const { return with(&type::beta1, v); }
    constexpr AdamHyperFields beta2(double v) const { return with(&type::beta2, v); }
    constexpr AdamHyperFields betas(double b1, double b2) const { return beta1(b1).beta2(b2); }
    constexpr AdamHyperFields eps(double v) const { return with(&type::eps, v); }
    constexpr AdamHyperFields weight_decay(double v) const { return with(&type::weight_decay, v); }
    constexpr AdamHyperFields decoupled(bool v) const { return with(&type::decoupled, v); }
    constexpr AdamHyperFields amsgrad(bool v) const { return with(&type::amsgrad, v); }
    constexpr AdamHyperFields maximize(bool v) const { return with(&type::maximize, v); }
    constexpr AdamHyperFields bias_correction(bool v) const {
        return with(&type::bias_correction, v);
    }
    constexpr AdamHyperFields keras_eps(bool v) const { return with(&type::keras_eps, v); }
};

class SgdHyperFields : public Fields<SgdHyper, SgdHyperFields> {
public:
    constexpr SgdHyperFields lr(double v) const { return with(&type::lr, v); }
    constexpr SgdHyperFields momentum(double v) const { return with(&type::momentum, v); }
    constexpr SgdHyperFields dampening(double v) const { return with(&type::dampening, v); }
    constexpr SgdHyperFields weight_decay(double v) const { return with(&type::weight_decay, v); }
    constexpr SgdHyperFields nesterov(bool v) const { return with(&type::nesterov, v); }
    constexpr SgdHyperFields maximize(bool v) const { return with(&type::maximize, v); }
};

class AdagradHyperFields : public Fields<AdagradHyper, AdagradHyperFields> {
public:
    constexpr AdagradHyperFields lr(double v) const { return with(&type::lr, v); }
    constexpr AdagradHyperFields lr_decay(double v) const { return with(&type::lr_decay, v); }
    constexpr AdagradHyperFields weight_decay(double v) const {
        return with(&type::weight_decay, v);
    }
    constexpr AdagradHyperFields eps(double v) const { return with(&type::eps, v); }
    constexpr AdagradHyperFields maximize(bool v) const { return with(&type::maximize, v); }
};

// Tensor setters take the member's own type (decltype), so they follow the structs' types (for a
// float16 or bfloat16 parameter the state arrays are float). The fields every tensor has:
template <class Built, class Self>
class ParamFields : public Fields<Built, Self> {
protected:
    using type = Built;

public:
    constexpr Self param(decltype(type::param) v) const { return this->with(&type::param, v); }
    constexpr Self grad(decltype(type::grad) v) const { return this->with(&type::grad, v); }
    constexpr Self master(decltype(type::master) v) const { return this->with(&type::master, v); }
    constexpr Self size(std::int64_t v) const { return this->with(&type::size, v); }
    constexpr Self grad_multiplier(double v) const { return this->with(&type::grad_multiplier, v); }
    constexpr Self rounding(Rounding v) const { return this->with(&type::rounding, v); }
    constexpr Self rounding_key(std::uint64_t v) const {
        return this->with(&type::rounding_key, v);
    }
};

template <class T>
class AdamTensorFields : public ParamFields<AdamTensor<T>, AdamTensorFields<T>> {
    using type = AdamTensor<T>;

public:
    constexpr AdamTensorFields exp_avg(decltype(type::exp_avg) v) const {
        return this->with(&type::exp_avg, v);
    }
    constexpr AdamTensorFields exp_avg_sq(decltype(type::exp_avg_sq) v) const {
        return this->with(&type::exp_avg_sq, v);
    }
    constexpr AdamTensorFields max_exp_avg_sq(decltype(type::max_exp_avg_sq) v) const {
        return this->with(&type::max_exp_avg_sq, v);
    }
    constexpr AdamTensorFields scalars(const AdamScalars& v) const {
        return this->with(&type::scalars, v);
    }
};

template <class T>
class SgdTensorFields : public ParamFields<SgdTensor<T>, SgdTensorFields<T>> {
    using type = SgdTensor<T>;

public:
    constexpr SgdTensorFields momentum_buffer(decltype(type::momentum_buffer) v) const {
        return this->with(&type::momentum_buffer, v);
    }
    constexpr SgdTensorFields scalars(const SgdScalars& v) const {
        return this->with(&type::scalars, v);
    }
};

template <class T>
class AdagradTensorFields : public ParamFields<AdagradTensor<T>, AdagradTensorFields<T>> {
    using type = AdagradTensor<T>;

public:
    constexpr AdagradTensorFields state_sum(decltype(type::state_sum) v) const {
        return this->with(&type::state_sum, v);
    }
    constexpr AdagradTensorFields scalars(const AdagradScalars& v) const {
        return this->with(&type::scalars, v);
    }
};

constexpr AdamHyperFields adam_hyper() { return {}; }
constexpr SgdHyperFields sgd_hyper() { return {}; }
constexpr AdagradHyperFields adagrad_hyper() { return {}; }
template <class T>
constexpr AdamTensorFields<T> adam_tensor() {
    return {};
}
template <class T>
constexpr SgdTensorFields<T> sgd_tensor() {
    return {};
}
template <class T>
constexpr AdagradTensorFields<T> adagrad_tensor() {
    return {};
}

}  // namespace fastadam
