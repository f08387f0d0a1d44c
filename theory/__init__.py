"""Closed-form predictions, one module per paper topic. Never imports ``sims``: theory is the
independent reference the simulations are held against."""
