"""Export jobs live here (tenant app); built by the exports issue."""
