// Least-squares regression trained with fastadam's Adam kernel in a pure C++ loop.
//
// Minimizes L(w) = 0.5 / m * ||X w - y||^2 for a random X (m x n) and y = X w_true, starting
// from w = 0. The gradient X^T (X w - y) / m is computed here; fastadam::adam_step updates w and
// the moment estimates in place. Prints the loss as it falls and exits with status 1 unless it
// fell by at least 100x.
//
//   least_squares [steps]      (default 300)
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <fastadam/builders.hpp>  // includes fastadam/kernels.hpp

namespace {

struct Problem {
    int m, n;
    std::vector<float> x;  // m x n, row-major
    std::vector<float> y;  // m

    // Loss at w; the gradient goes into grad.
    double loss_and_grad(const std::vector<float>& w, std::vector<float>& grad) const {
        std::vector<double> residual(m);
        double loss = 0.0;
        for (int i = 0; i < m; ++i) {
            double r = -y[i];
            for (int j = 0; j < n; ++j) r += double(x[i * n + j]) * w[j];
            residual[i] = r;
            loss += r * r;
        }
        for (int j = 0; j < n; ++j) {
            double g = 0.0;
            for (int i = 0; i < m; ++i) g += double(x[i * n + j]) * residual[i];
            grad[j] = static_cast<float>(g / m);
        }
        return 0.5 * loss / m;
    }
};

Problem make_problem(int m, int n, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    Problem p{m, n, std::vector<float>(std::size_t(m) * n), std::vector<float>(m)};
    std::vector<float> w_true(n);
    for (auto& v : w_true) v = normal(gen);
    for (auto& v : p.x) v = normal(gen);
    for (int i = 0; i < m; ++i) {
        double s = 0.0;
        for (int j = 0; j < n; ++j) s += double(p.x[i * n + j]) * w_true[j];
        p.y[i] = static_cast<float>(s);
    }
    return p;
}

}  // namespace

int main(int argc, char** argv) {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 300;
    if (steps < 1) {
        std::fprintf(stderr, "usage: %s [steps >= 1]\n", argv[0]);
        return 2;
    }
    const Problem problem = make_problem(256, 32, 42);
    const int n = problem.n;

    std::vector<float> w(n, 0.0f), grad(n), exp_avg(n, 0.0f), exp_avg_sq(n, 0.0f);
    // Named fields (fastadam/builders.hpp); unset ones keep their defaults (betas 0.9, 0.999).
    const fastadam::AdamHyper hyper = fastadam::adam_hyper().lr(0.05);
    fastadam::AdamTensor<float> tensor = fastadam::adam_tensor<float>()
                                             .param(w.data())
                                             .grad(grad.data())
                                             .exp_avg(exp_avg.data())
                                             .exp_avg_sq(exp_avg_sq.data())
                                             .size(n);

    std::printf("fastadam C++ example: least squares, %d x %d, Adam lr %g, ISA %s\n", problem.m,
                n, hyper.lr, fastadam::isa_name(fastadam::active_isa()));
    const double initial = problem.loss_and_grad(w, grad);
    double loss = initial;
    std::printf("step %5d  loss %.6e\n", 0, initial);
    for (int t = 1; t <= steps; ++t) {
        tensor.scalars = fastadam::make_scalars(hyper, t);  // bias correction for step t
        fastadam::adam_step(&tensor, 1);
        loss = problem.loss_and_grad(w, grad);
        if (t % (steps >= 10 ? steps / 10 : 1) == 0 || t == steps)
            std::printf("step %5d  loss %.6e\n", t, loss);
    }
    const double ratio = initial / loss;
    std::printf("initial loss %.6e  final loss %.6e  ratio %.3e\n", initial, loss, ratio);
    if (!(ratio >= 100.0)) {
        std::printf("FAILED: the loss fell by less than 100x\n");
        return 1;
    }
    std::printf("OK: the loss fell by at least 100x\n");
    return 0;
}
