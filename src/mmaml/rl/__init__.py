"""Meta-reinforcement learning: MuMoMAML and MAML-TRPO on multimodal task distributions.

Laid out by role: ``envs`` (gymnasium environments and their batched tensor
counterparts), ``policy`` (Gaussian MLP run through the core ``Learner``),
``encoder`` (GRU trajectory encoder), ``sampler`` (all tasks x episodes stepped
at once), ``returns`` and ``baseline`` (discounted returns, GAE, linear feature
baseline), ``trpo`` (conjugate gradient and line search), ``metalearner`` (the
adaptation protocol of MAML and MuMoMAML), ``config``, ``algorithm`` (one
meta-iteration for the trainer) and ``evaluation``.
"""
