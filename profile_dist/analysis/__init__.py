"""The maths of PROFILE as pure functions: tau, intervals, bootstrap partials, Bradley-Terry, agreement."""
