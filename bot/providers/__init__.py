"""Video backends behind one interface, and the catalogue of their models."""
