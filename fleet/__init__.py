"""Fleet mode: Eco-Pulse as the placement brain of a Karmada fleet (``python -m fleet``)."""
