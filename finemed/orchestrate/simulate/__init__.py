"""``finemed plan RECIPE --simulate``: each training stage's own code path at the recipe's real size, on fake memory."""
