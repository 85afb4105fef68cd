"""Reproducing the paper's regression results (Table 1, Figure 2) from one command."""
