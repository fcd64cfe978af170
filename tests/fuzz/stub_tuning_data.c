/*
 * For the standalone fuzz builds of run.sh only: the shipped tuning tables
 * that the build generates into build/src/tuning_data.c, left empty, so
 * src/tuning.c links without the build folder. The parser under test does
 * not use them.
 */
#include "tuning.h"

const nj_shipped_table nj_shipped_tuning[1] = {{"none", "", 0}};
const int nj_shipped_tuning_count = 0;
