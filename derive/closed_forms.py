def closed_form_1d(expr, x, q):
    return None


def closed_form_2d(expr, x, y, q1, q2, c):
    return None
