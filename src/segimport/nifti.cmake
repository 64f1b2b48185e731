# NIfTI label maps read as segmentation objects (segnifti.h): nifti.c with
# nifticlib (Debian's libnifti2-dev, which ships no pkg-config file: found by
# header and library name), totalseg.c with TotalSegmentator's classes.
# Included by this folder's CMakeLists.txt with include(nifti.cmake).
find_path(NIFTI_INCLUDE_DIR nifti2_io.h PATH_SUFFIXES nifti REQUIRED)
find_library(NIFTI2_LIB nifti2 REQUIRED)
find_library(ZNZ_LIB znz REQUIRED)

add_library(r3d_segnifti STATIC
  ${CMAKE_CURRENT_LIST_DIR}/nifti.c
  ${CMAKE_CURRENT_LIST_DIR}/totalseg.c)
# SYSTEM: nifticlib's headers are not held to our warnings.
target_include_directories(r3d_segnifti SYSTEM PRIVATE ${NIFTI_INCLUDE_DIR})
target_link_libraries(r3d_segnifti
  PUBLIC r3d_common
  PRIVATE ${NIFTI2_LIB} ${ZNZ_LIB} PkgConfig::JANSSON ${MATH_LIB})
