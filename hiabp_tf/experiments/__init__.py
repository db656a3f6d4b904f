"""The paper's experiments: which runs make each table and figure at each scale (`plan`), the
tables and the claims table (`report`, `claims`), figures (`figures`, `disentangle` for Figure 7), the
verdicts of Figures 1 and 7 (`informative_init`, `layer_factors`), and the Langevin budget study.
May import anything below it; nothing below imports it."""
