"""An independent NumPy reference for the dynamical-linear-bandit agents (DynLin-UCB at both lambdas,
LinUCBAgent, DLinUCBAgent, AR2) (Mussi, Metelli, Restelli 2023).

Written from the paper's model and the authors' agent equations (marcomussi/DLB, agents.py and scripts/main.py),
per round, with its own constants (h, rho, Phi(A), the epoch lengths, beta_t). It imports NumPy only, never
sims/ or theory/ (tests/test_imports.py enforces it). The instances are the authors' config files' matrices,
typed here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

# ---- the authors' instances (config/testcase_synt_sigma0dot01.json, config/testcase_realdata.json) ----
INSTANCES = {
    "synthetic": dict(A=np.diag([0.2, 0.0, 0.1]), B=np.diag([0.45, 0.0, 0.1]), C=np.diag([1.0, 0.0, 0.1]),
                      D=np.diag([0.0, 0.5, 0.1]), sigma=0.01),
    "real": dict(A=np.array([[0.38, 0.33, 0.6], [0.07, 0.76, -0.54], [0.18, 0.34, 0.05]]),
                 B=np.array([[0.14, 0.34, -0.05], [-0.17, 0.03, -0.01], [0.04, -0.09, 0.17]]),
                 C=np.array([[0.25, -0.14, 0.01], [-0.55, 0.2, -0.13], [-0.31, -0.1, -0.01]]),
                 D=np.array([[0.11, 0.1, 0.01], [0.01, 0.36, 0.01], [0.01, -0.05, 0.0]]), sigma=0.01),
}
# every permutation of (1, 0.5, 0): greedy fills of a daily budget 1.5 over 3 campaigns capped at 1
ARMS = np.array(sorted(set(itertools.permutations((1.0, 0.5, 0.0)))))  # rows sorted, as np.unique(axis=0)
TIE_RTOL = 1e-12  # scores this close count as one tie, broken to the lowest index (both sides use this rule)


def first_max(scores) -> int:
    """Lowest index among the scores within TIE_RTOL of the maximum (exact ties: np.argmax's rule)."""
    s = np.asarray(scores)
    return int(np.flatnonzero(s >= s.max() - TIE_RTOL * abs(s.max()))[0])


REF_ALGS = ("dynlinucb", "dynlinucblog", "linucb", "dlinucb", "ar2")


class Ref:
    """The constants of one instance, computed from the matrices."""

    def __init__(self, name: str, T: int):
        p = INSTANCES[name]
        self.A, self.B = p["A"], p["B"]
        self.om, self.th = p["C"].sum(0), p["D"].sum(0)  # the 3 outputs are summed: omega = 1^T C, theta = 1^T D
        self.sigma = p["sigma"]
        self.sig_x, self.sig_y = self.sigma, math.sqrt(3) * self.sigma  # reward noise: 3 summed output noises
        n = self.A.shape[0]
        self.h = self.th + self.B.T @ np.linalg.inv(np.eye(n) - self.A).T @ self.om  # cumulative Markov parameter
        self.rho = float(max(abs(np.linalg.eigvals(self.A))))
        self.Phi = max(np.linalg.norm(np.linalg.matrix_power(self.A, k), 2) / self.rho**k for k in range(1, 1000)
                       if self.rho**k > 1e-300)  # sup over tau = 1..999, as the authors; rho^k underflows past ~440
        self.T = T
        self.K, self.d = ARMS.shape
        self.U = max(np.linalg.norm(a) for a in ARMS)
        self.Bn = np.linalg.norm(self.B, 2)
        self.Om, self.Th = np.linalg.norm(self.om), np.linalg.norm(self.th)
        ends, m, tot = [], 0, 0  # epoch m lasts 1 + floor(log m / log(1/rho)) rounds; updates at the last one
        while tot < T:
            m += 1
            tot += 1 + math.floor(math.log(m) / math.log(1 / self.rho))
            ends.append(tot)
        self.ends = set(ends)

    def beta_dynlin(self, t, lam):
        """beta_t = c1 sqrt(lam) + c2/sqrt(lam) log(e(t+1)) + sqrt(2 s~^2 (log T + d/2 log(1 + t U^2/(d lam))))."""
        r, X = self.rho, self.U / (1 - self.rho)
        c1 = self.Th + self.Om * self.Bn * self.Phi / (1 - r)
        c2 = self.U * self.Om * self.Phi * (self.U * self.Bn / (1 - r) + X)
        s2 = self.sigma**2 * (1 + self.Om**2 * self.Phi**2 / (1 - r**2))  # the authors' sigma^2
        return (c1 * math.sqrt(lam) + c2 / math.sqrt(lam) * math.log(math.e * (t + 1))
                + math.sqrt(2 * s2 * (math.log(self.T) + self.d / 2 * math.log(1 + t * self.U**2 / (self.d * lam)))))

    def run(self, alg, xi_x, xi_y, u01, a0):
        """One trial; returns (arms played, pseudo-regret sum_t h^T u* - h^T u_t)."""
        T, K, d = self.T, self.K, self.d
        x = np.zeros(self.A.shape[0])
        lam = math.log(T) if alg == "dynlinucblog" else 1.0
        V, b, hh = lam * np.eye(d), np.zeros(d), np.zeros(d)
        Vt = lam * np.eye(d)  # D-LinUCB's second Gram matrix
        g = 0.999999999  # D-LinUCB (Russac et al. 2019 as DLinUCBAgent): discount 1 - 1e-9, lambda = 1
        arm = a0
        # AR2 (Chen et al. 2023 as the authors' AR2Agent): alpha = rho, huge epochs at sigma = 0.01
        alpha = self.rho
        epoch = math.ceil(K * alpha**-3 * self.sigma**-3)
        c1_ar2 = 24 * math.sqrt(4 * math.log(1 / (alpha * self.sigma)) + 4 * math.log(epoch) + 2 * math.log(4 * K))
        ep, tau, trig, est = 1, np.full(K, np.inf), np.full(K, np.inf), np.full(K, np.inf)
        last = last_last = 0
        played = np.empty(T, int)
        for t in range(T):
            if alg == "dlinucb":
                if t > 0:  # lam_t = g^-t lam; bonus sqrt(a^T V^-1 V~ V^-1 a)
                    lam_t = g ** (-t) * lam
                    beta = self.Th * math.sqrt(lam_t) + self.sigma * math.sqrt(2 * math.log(T) + d * math.log(
                        1 + 1.5**2 * (1 - g ** (2 * t)) / (d * lam_t * (1 - g**2))))
                    Vi = np.linalg.inv(V)
                    W = Vi @ Vt @ Vi
                    arm = first_max([a @ hh + beta * math.sqrt(a @ W @ a) for a in ARMS])
            elif alg in ("dynlinucb", "dynlinucblog", "linucb"):
                new = (t - 1) in self.ends if alg != "linucb" else True
                if t > 0 and new:
                    if alg == "linucb":  # LinUCBAgent: constant radius, no sigma, budget 1.5
                        beta = math.sqrt(lam) * self.Th + math.sqrt(2 * math.log(T) + d * math.log(
                            (d * lam + T * 1.5**2) / (d * lam)))
                    else:
                        beta = self.beta_dynlin(t, lam)
                    Vi = np.linalg.inv(V)
                    arm = first_max([a @ hh + beta * math.sqrt(a @ Vi @ a) for a in ARMS])
            else:  # ar2
                t0 = t + 1
                if t0 <= K + (ep - 1) * epoch:
                    arm = K + (ep - 1) * epoch - t0
                else:
                    sup = last if est[last] >= est[last_last] else last_last
                    for i in range(K):
                        if i != sup and not np.isfinite(trig[i]):
                            w = c1_ar2 * self.sigma * math.sqrt((alpha**2 - alpha ** (2 * (t0 - tau[i] + 1)))
                                                                / (1 - alpha**2))
                            if est[sup] - est[i] <= w:
                                trig[i] = t0
                    if np.isfinite(trig).any() and t0 % 2 == 1:
                        tied = np.flatnonzero(trig == trig.min())
                        arm = int(tied[min(int(u01[t] * len(tied)), len(tied) - 1)])
                    else:
                        arm = sup
                last_last, last = last, arm
            u = ARMS[arm]
            y = self.om @ x + self.th @ u + self.sig_y * xi_y[t]
            x = self.A @ x + self.B @ u + self.sig_x * xi_x[t]
            if alg == "dlinucb":
                lam_t = g ** (-t) * lam
                V = g * V + np.outer(u, u) + (1 - g) * lam_t * np.eye(d)
                Vt = g**2 * Vt + np.outer(u, u) + (1 - g**2) * lam_t * np.eye(d)
                b = g * b + u * y
                hh = np.linalg.inv(V) @ b  # as DLinUCBAgent: early rounds have near-tied scores
            elif alg == "linucb" or (alg != "ar2" and t in self.ends):
                V = V + np.outer(u, u)
                b = b + u * y
                hh = np.linalg.solve(V, b)
            elif alg == "ar2":
                t0 = t + 1
                tau[arm] = t0
                if t0 < K + (ep - 1) * epoch:
                    est[arm] = alpha ** (K - 1) * y  # alpha^(K - t0 + tau - 1) with tau = t0
                else:
                    est = est * alpha
                    est[arm] = alpha * y
                    if t0 % epoch == 0:
                        ep += 1
            played[t] = arm
        v = ARMS @ self.h
        return played, float(np.sum(v.max() - v[played]))
