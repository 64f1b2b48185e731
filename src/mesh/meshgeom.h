/*
 * meshgeom.h: internal to src/mesh: small geometric kernels shared by the
 * steps (distance.c defines them). Any thread; pure functions.
 */
#ifndef R3D_MESHGEOM_H
#define R3D_MESHGEOM_H

/* The point q of the triangle (a, b, c) closest to p, by regions (Ericson,
 * Real-Time Collision Detection, 5.1.5). */
void meshgeom_closest_on_triangle(const double p[3], const double a[3], const double b[3],
				  const double c[3], double q[3]);
/* Squared distance from p to the triangle (a, b, c). */
double meshgeom_point_triangle_d2(const double p[3], const double a[3], const double b[3],
				  const double c[3]);

#endif
