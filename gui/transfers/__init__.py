"""The transfer list: the queue's items as a Qt model, a filter, a view and its actions."""
