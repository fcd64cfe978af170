/* The parent project's program: normjit from the subproject, header and library. */
#include <normjit.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    printf("normjit %s\n", normjit_version_string());
    return strcmp(normjit_version_string(), NORMJIT_VERSION_STRING) != 0;
}
